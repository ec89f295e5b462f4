"""gunicorn settings: `gunicorn -c webapp/gunicorn.conf.py webapp.wsgi` (what `manage.py up` runs).

From the environment: CLIPMINE_BIND, WEB_CONCURRENCY; any other gunicorn option through
GUNICORN_CMD_ARGS or the command line, which win over this file.
"""
import os

# Loopback by default: TLS ends at a proxy in front (SECURE_PROXY_SSL_HEADER trusts its header).
bind = [os.environ.get("CLIPMINE_BIND", "127.0.0.1:8000")]
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# No request decodes or runs the CNN (workers do); the longest is reading a large upload, which a
# buffering proxy in front hands over at local speed.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "120"))
# On SIGTERM, requests in flight get this long; `manage.py up` waits a little longer before SIGKILL.
graceful_timeout = 20
# Pages and API calls need short request lines and few headers; refuse the rest before Django.
limit_request_line = 4094
limit_request_fields = 50
limit_request_field_size = 8190
accesslog = "-"
errorlog = "-"
# The workers' heartbeat is an fchmod on a file here; on a disk-backed /tmp it can stall a worker.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
proc_name = "clipmine-web"
# gunicorn's runtime control socket sits at one per-user path that every gunicorn on the machine
# would take over from the others; processes are managed by signals (`manage.py up`, systemd).
control_socket_disable = True
