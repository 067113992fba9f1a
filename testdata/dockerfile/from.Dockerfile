FROM alpine
FROM --platform=linux/arm64 alpine:3.20 AS Build-1.x_y
FROM --platform=$BUILDPLATFORM golang as builder
from base AS final
