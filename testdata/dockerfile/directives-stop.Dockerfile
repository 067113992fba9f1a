# unknown=directive
# escape=`
FROM alpine
RUN echo \
