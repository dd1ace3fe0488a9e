# closed-loop Airflow image: the official Airflow 3 image plus this project's pinned requirements and code.
#   docker compose build        (docker-compose.yaml builds it for every Airflow service)
FROM apache/airflow:3.3.2-python3.11

# requirements.txt pins every package (Airflow's constraint files are not reachable from CI): install it
# with apache-airflow itself pinned so pip can never move Airflow away from the base image's version.
COPY requirements.txt /requirements.txt
RUN pip install --no-cache-dir "apache-airflow==3.3.2" -r /requirements.txt

# The code is baked in so the image also runs without the compose file's bind mounts (production);
# docker-compose.yaml mounts the working tree over these paths for development.
COPY --chown=airflow:0 dags/ /opt/airflow/dags/
COPY --chown=airflow:0 plugins/ /opt/airflow/plugins/
COPY --chown=airflow:0 include/ /opt/airflow/include/
COPY --chown=airflow:0 sandbox/ /opt/closed-loop/sandbox/
COPY --chown=airflow:0 devtools/ /opt/closed-loop/devtools/

ENV PYTHONPATH=/opt/airflow/plugins:/opt/closed-loop \
    CLOSED_LOOP_PLAYBOOK=/opt/airflow/include/playbook.yaml
