FROM alpine
RUN --mount=type=volume,target=/x echo bad-type
RUN --mount=type=cache,target=/x,colour=blue echo bad-key
RUN --mount=type=cache echo no-target
RUN --mount=type=cache,target=/x,sharing=sometimes echo bad-sharing
RUN --mount=type=tmpfs,target=/x,size=lots echo bad-size
RUN --mount=type=cache,target=/x,mode=999 echo bad-mode
RUN --mount=type=cache,target=/x,uid=-1 echo bad-uid
RUN --mount=type=bind,target=/x,ro=maybe echo bad-bool
RUN --network=bridge echo bad-network
RUN --security=root echo bad-security
RUN --network=none --network=host echo duplicate
RUN --mount echo missing-value
RUN --frobnicate echo unknown-flag
RUN echo still parsed after the errors
