# Dockerfile 1.2 has no heredocs: the same files written by RUN (umask 022 gives 0644).
FROM busybox:latest
RUN printf 'key=value\nother=thing\n' > /etc/app.conf
RUN mkdir -p /multi && printf 'first file\n' > /multi/one.txt && printf 'second file\n' > /multi/two.txt
WORKDIR /w
RUN printf 'in workdir\n' > relative.txt
RUN mkdir -p /usr/local/bin && printf '#!/bin/sh\necho tool\n' > /usr/local/bin/tool && chmod 755 /usr/local/bin/tool
