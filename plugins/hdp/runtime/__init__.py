"""Running the platform on a machine: set-up of servers and roles, process environment, dbt outside
Airflow, the embedded Airflow (up/down), the run summary.
"""
