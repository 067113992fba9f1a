FROM alpine
COPY --chmod=888 a /b
COPY --chmod=u=rwZ a /b
COPY --chmod=q+x a /b
COPY --checksum=sha256:abc a /b
ADD --from=base a /b
ADD --parents a /b
COPY --link=perhaps a /b
COPY onlyone
ADD
COPY ["a", 1]
COPY --from=a --from=b x /y
