import sys

from hdp.cli import main

sys.exit(main())
