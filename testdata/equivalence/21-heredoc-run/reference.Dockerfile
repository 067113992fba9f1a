# Dockerfile 1.2 has no heredocs: the same commands on one line each.
FROM busybox:latest
RUN mkdir -p /out && echo first > /out/one && echo second > /out/two
RUN echo "piped to sh" > /out/three
RUN printf 'line 1\n  indented\n' > /out/four
RUN echo tabs stripped > /out/five
