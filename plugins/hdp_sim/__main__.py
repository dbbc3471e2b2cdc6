import sys

from hdp_sim.demo import main

if __name__ == "__main__":  # Airflow's plugin loader imports every module under plugins/
    sys.exit(main())
