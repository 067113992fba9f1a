# build.Dockerfile.dockerignore takes precedence over .dockerignore: a.txt is kept, b.txt is not.
FROM busybox:latest
COPY . /ctx/
