FROM alpine
RUN echo a \

  b \
  # comment inside
  c \
