FROM alpine
RUN echo ok
RUN <<EOF
never
terminated
