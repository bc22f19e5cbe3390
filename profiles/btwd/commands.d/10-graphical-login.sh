#!/bin/sh
# Boot to the greeter: greetd is the display manager of graphical.target.
set -eu
systemctl enable greetd.service
systemctl set-default graphical.target
