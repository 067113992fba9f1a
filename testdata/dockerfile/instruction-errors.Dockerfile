FROM alpine
FORM typo
ENV ONLYKEY
ENV a=b c
LABEL
SHELL /bin/sh -c
SHELL []
CMD ["a", ["nested"]]
USER
USER a b
WORKDIR
MAINTAINER
VOLUME
VOLUME [""]
ARG
ONBUILD ONBUILD RUN x
ONBUILD FROM alpine
ONBUILD MAINTAINER me
ONBUILD
CMD --flag=1 echo
RUN
RUN echo recovered after every error above
