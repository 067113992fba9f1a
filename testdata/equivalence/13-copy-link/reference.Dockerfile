# COPY: the copied files form a layer of their own, rebased onto the stage.
FROM busybox:latest
RUN echo before > /before
COPY a.txt /linked/
COPY --chown=app:app dir /linked-dir/
COPY --chmod=700 a.txt /etc/linked-file
RUN echo after > /after
