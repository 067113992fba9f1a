# The parent image, built first and tagged onbuild-parent: its triggers run in the child.
FROM busybox:latest
WORKDIR /app
ONBUILD COPY trigger.txt /app/
ONBUILD RUN echo "trigger ran in $(pwd)" > /app/ran.txt
ONBUILD ENV TRIGGERED=yes
LABEL parent=yes
