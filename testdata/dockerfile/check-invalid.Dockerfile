# check=skip=all;colour=red
FROM alpine
