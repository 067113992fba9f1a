FROM alpine
RUN <<EOF
echo plain $HOME
EOF
RUN <<-EOF
	echo tabs removed
		echo nested tabs
	EOF
RUN <<'EOF'
echo $NOT_EXPANDED
EOF
RUN <<"EOF"
echo $NOT_EXPANDED
EOF
RUN <<E"O"F
partly quoted
EOF
RUN cat <<A - <<-B > /out
first
A
	second
	B
RUN 3<<EOF cat /dev/fd/3
fd three
EOF
COPY <<EOF /etc/motd
hello
EOF
ADD --chmod=600 <<one <<two /dir/
1
one
2
two
ONBUILD RUN <<EOF
later
EOF
RUN ["cat", "<<EOF"]
RUN cat <<<EOF
RUN echo \
  <<EOF
continued
EOF
