FROM alpine
RUN --mount=type=bind,source=src,target=/src,from=build,rw echo bind
RUN --mount=target=/ctx echo default-bind-readonly
RUN --mount=type=cache,id=apk,target=/var/cache/apk,sharing=locked,mode=0755,uid=1000,gid=1000 apk add gcc
RUN --mount=type=cache,dst=/root/.cache,sharing=private,ro echo cache
RUN --mount=type=tmpfs,destination=/tmp,size=64m echo tmpfs
RUN --mount=type=secret,id=token,target=/run/secrets/t,required=true,mode=0400,uid=0,gid=0 cat /run/secrets/t
RUN --mount=type=secret,id=aws,env=AWS_KEY echo env
RUN --mount=type=ssh,id=default,required echo ssh
RUN --mount=type=cache,target=$DIR echo expanded-later
RUN --mount=type=bind,target=/a --mount=type=tmpfs,target=/b echo two-mounts
RUN --network=none echo offline
RUN --network=host echo host
RUN --network=default echo default
RUN --security=insecure echo insecure
RUN --security=sandbox echo sandbox
RUN "--mount=type=bind,target=/quoted" echo quoted-flag
RUN -- --not-a-flag
