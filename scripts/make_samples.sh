#!/usr/bin/env bash
# Regenerate the sample speech bundled in the package (reach_devkit/samples) for
# the demo (`scripts/demo.sh`). Output is deterministic for a given flite/ffmpeg version, so the
# files only change in version control when this script or the sentences change.
# Needs Debian's flite and ffmpeg.
set -euo pipefail
cd "$(dirname "$0")/.."
out=reach_devkit/samples
for tool in flite ffmpeg; do
  command -v "$tool" >/dev/null || { echo "$tool not found (apt-get install flite ffmpeg)" >&2; exit 1; }
done

# file name | sentence (flite's slt voice; sentences pocketsphinx recognises word-perfectly)
samples=(
  "welcome.mp3|Good morning everyone, and welcome to today's class about the history of the city."
  "weather.mp3|The weather will be sunny in the afternoon, so we can have lunch outside in the garden."
  "thanks.mp3|Thank you for watching this video. If you have any questions, please send us an email."
)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$out"
json="["
for entry in "${samples[@]}"; do
  file=${entry%%|*}
  text=${entry#*|}
  case $text in *'"'* | *'\'*) echo "no quotes or backslashes in sentences: $text" >&2; exit 1 ;; esac
  flite -voice slt -t "$text" -o "$tmp/speech.wav"
  ffmpeg -hide_banner -loglevel error -y -i "$tmp/speech.wav" \
    -ar 44100 -ac 1 -c:a libmp3lame -b:a 64k \
    -map_metadata -1 -fflags +bitexact -flags +bitexact "$out/$file"
  [ "$json" = "[" ] || json+=","
  json+=$'\n'"  {\"file\": \"$file\", \"text\": \"$text\"}"
done
printf '%s\n]\n' "$json" > "$out/samples.json"
ls -l "$out"
