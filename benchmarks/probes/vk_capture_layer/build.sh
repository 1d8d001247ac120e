#!/bin/sh
# Builds the capture layer beside this script (needs gcc and Debian's libvulkan-dev headers).
# Use it with:  VK_ADD_LAYER_PATH=<this folder> VK_INSTANCE_LAYERS=VK_LAYER_TABGPT_capture \
#               TABGPT_VK_CAPTURE_DIR=<an existing folder> <any Vulkan program>
set -e
cd "$(dirname "$0")"
gcc -O2 -shared -fPIC -fvisibility=hidden -Wall -o libVkLayer_tabgpt_capture.so capture_layer.c
