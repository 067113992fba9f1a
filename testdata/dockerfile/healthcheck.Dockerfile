FROM alpine
HEALTHCHECK NONE
HEALTHCHECK --interval=1m30s --timeout=500ms --start-period=1h2m3.5s --start-interval=2s --retries=5 CMD curl -f http://localhost/
HEALTHCHECK --interval=0s CMD ["true"]
HEALTHCHECK cmd wget -q -O- localhost
