# Dockerfile 1.2 has no --parents: the same paths spelled out.
FROM busybox:latest
COPY src/a.txt /out/src/a.txt
COPY src/sub/b.txt /out/src/sub/b.txt
COPY src/sub/b.txt /globbed/src/sub/b.txt
COPY other/o.txt /globbed/other/o.txt
COPY src/sub/deeper/c.txt /pivot/sub/deeper/c.txt
