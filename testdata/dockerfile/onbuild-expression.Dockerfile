FROM alpine
  onbuild \
  RUN echo \
  continued
