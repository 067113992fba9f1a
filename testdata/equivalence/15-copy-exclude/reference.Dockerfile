# Dockerfile 1.2 has no --exclude: the files that remain, copied one by one.
FROM busybox:latest
COPY tree/a.txt /dst/a.txt
COPY tree/sub/b.txt /dst/sub/b.txt
COPY top.log /top/top.log
