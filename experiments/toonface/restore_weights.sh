#!/usr/bin/env bash
# The ToonFace build weights left the tree at the layout change (issue 16); they stay in git history.
# This restores them into runs/toonface/ (git-ignored), next to their config.json, for --resume, --init-from,
# --loss-clip … Usage, from the repository root: experiments/toonface/restore_weights.sh [OUT=runs/toonface]
set -euo pipefail
rev=b1bff7c   # the last commit that tracked them (under work/toonface/)
out=${1:-runs/toonface}
for f in $(git ls-tree -r --name-only "$rev" -- work/toonface | grep -E '\.safetensors$|/config\.json$|/state\.json$'); do
  dst="$out/${f#work/toonface/}"
  mkdir -p "$(dirname "$dst")"
  git show "$rev:$f" > "$dst"
  echo "$dst"
done
