#!/bin/sh
# Boot to LightDM: it is the display manager of graphical.target.
set -eu
systemctl enable lightdm.service
systemctl set-default graphical.target
