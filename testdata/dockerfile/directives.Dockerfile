# syntax=docker/dockerfile:1
#ESCAPE = `
# check=error=true
# syntax=twice
FROM alpine
RUN echo a `
    b
