# syntax=docker/dockerfile:1
# check=skip=JSONArgsRecommended;error=true
ARG BASE=alpine VERSION
FROM ${BASE}
MAINTAINER someone <a@b.c>
LABEL a=b "c d"="e f" g='h i'
LABEL legacy value with spaces
ENV A=1 B="two words" C=three\ words
ENV LEGACY value with spaces
ARG X Y=2 Z="q r"
CMD ["sh", "-c", "echo"]
CMD echo shell form
ENTRYPOINT ["/entry"]
ENTRYPOINT exec /entry
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
USER app:app
WORKDIR /src
VOLUME ["/data", "/logs"]
VOLUME /one /two
ONBUILD COPY . /app
ONBUILD RUN --mount=type=cache,target=/c make
run lower case keywords work
