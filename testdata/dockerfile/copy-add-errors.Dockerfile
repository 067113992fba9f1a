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
ADD --checksum=sha256:XYZ https://example.com/a /a
ADD --checksum=md5:d41d8cd98f00b204e9800998ecf8427e https://example.com/a /a
ADD --checksum=$SUM https://example.com/a /a
