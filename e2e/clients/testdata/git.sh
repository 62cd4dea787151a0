#!/bin/sh
# Clones a private GitHub repository over HTTPS, commits and pushes, as an
# agent with $GITHUB_TOKEN does: git's credential helper hands the token to
# git as the password (user name x-access-token, GitHub's convention).
#
# Usage: sh git.sh
#
# Prints the clone's README, then "head <commit>" for the commit it pushed
# and "remote <commit>" for what the remote's main is afterwards.
set -eu
cd "$HOME"
git config --global credential.helper \
	'!f() { test "$1" = get || exit 0; echo username=x-access-token; echo "password=$GITHUB_TOKEN"; }; f'
git config --global user.name "standin agent"
git config --global user.email agent@example.com

git clone -q https://github.com/octo/demo.git
cd demo
cat README.md
echo "pushed from the sandbox" >from-sandbox.txt
git add from-sandbox.txt
git commit -q -m "commit from the sandbox"
git push -q origin main
echo "head $(git rev-parse HEAD)"
echo "remote $(git ls-remote origin refs/heads/main | cut -f1)"
