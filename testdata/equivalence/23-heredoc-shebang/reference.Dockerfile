# Dockerfile 1.2 has no heredocs: the same scripts run directly.
FROM busybox:latest
RUN set -e; mkdir /scripted; for n in 1 2 3; do echo "line $n" >> /scripted/lines; done
RUN ["/usr/bin/awk", "BEGIN { print \"written by awk\" > \"/scripted/awk.txt\" }"]
