FROM
FROM alpine AS
FROM alpine AS 1st
FROM alpine AS bad/name
FROM alpine INTO name
FROM alpine AS a b
FROM --platform linux/amd64 alpine
FROM --pull=always alpine
FROM alpine
