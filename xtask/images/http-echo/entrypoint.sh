#!/bin/sh
# netlab/http-echo entrypoint: `-text TEXT` (also `-text=TEXT`, `--text`) is written to
# /www/index.html, then busybox httpd serves it in the foreground on port 5678.
set -eu

usage() {
	echo "usage: http-echo -text TEXT" >&2
	exit 2
}

text=""
have_text=no
while [ "$#" -gt 0 ]; do
	case "$1" in
	-text | --text)
		[ "$#" -ge 2 ] || usage
		text="$2"
		have_text=yes
		shift 2
		;;
	-text=* | --text=*)
		text="${1#*=}"
		have_text=yes
		shift
		;;
	*)
		echo "http-echo: unknown argument: $1" >&2
		usage
		;;
	esac
done
[ "$have_text" = yes ] || usage

mkdir -p /www
printf '%s\n' "$text" >/www/index.html
exec httpd -f -p 5678 -h /www
