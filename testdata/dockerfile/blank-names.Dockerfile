FROM alpine
ENV =x
LABEL ="no key"
