FROM alpine AS base
COPY --from=base --chown=app:app --chmod=0755 --link --parents --exclude=*.md --exclude=.git src/ /app/
COPY --chmod=u=rwX,go=rX a /b
COPY --chmod=a+x,u-w,g=u,o= a /b
COPY --chmod=+x a /b
COPY --link=false a /b
COPY --chmod=$MODE a /b
COPY ["a b", "c", "/dest/"]
COPY --from=golang:1.22 /usr/local/go /usr/local/go
ADD --checksum=sha256:24454f830cdb571e2c4ad15481119c43b3cafd48dd869a9b2945d1036d1dc68d https://example.com/a.tar /a
ADD --keep-git-dir=true https://github.com/moby/buildkit.git#v0.10.1 /buildkit
ADD --unpack=false --link --chown=1000:1000 --chmod=644 --exclude=*.tmp archive.tar.gz /x/
ADD --unpack a.tar /x
