#!/bin/sh
# images.sh DIR: fetches real photographs from Debian's wallpaper packages
# and derives the benchmark cases from one of them with ImageMagick and
# jpegtran. Nothing it makes is committed. Needs apt-get download,
# dpkg-deb, /usr/bin/convert (imagemagick) and jpegtran (libjpeg-turbo-progs).
set -eu
dir=${1:-/tmp/thumbnail-bench}
mkdir -p "$dir/deb"
cd "$dir/deb"
[ -e plasma.deb ] || { apt-get download plasma-workspace-wallpapers && mv plasma-workspace-wallpapers_*.deb plasma.deb; }
dpkg-deb -x plasma.deb x
cd "$dir"
im=/usr/bin/convert
# A 2560x1600 q90 4:2:0 camera photograph, as shipped.
cp deb/x/usr/share/wallpapers/FallenLeaf/contents/images/2560x1600.jpg real.2560.jpg
# 12 and 24 MP cases: the photograph upscaled with mild sensor-like noise,
# so the entropy data is as dense as a camera file's.
$im real.2560.jpg -resize 4000x3000! -attenuate 0.4 +noise Gaussian -quality 90 -sampling-factor 2x2 p12.420.jpg
$im p12.420.jpg -quality 90 -sampling-factor 1x1 p12.444.jpg
$im real.2560.jpg -resize 6000x4000! -attenuate 0.4 +noise Gaussian -quality 90 -sampling-factor 2x2 p24.420.jpg
jpegtran -progressive p12.420.jpg > p12.prog.jpg
$im p12.420.jpg -colorspace CMYK -quality 90 p12.cmyk.jpg
ls -l "$dir"/*.jpg
