#!/bin/sh
# Builds the capture layer beside this script (a probe's tool, not part of the project's install or
# CI): needs gcc and the Vulkan headers, on Debian `apt-get install -y gcc libvulkan-dev`.
# Use it with:  VK_ADD_LAYER_PATH=<this folder> VK_INSTANCE_LAYERS=VK_LAYER_TABGPT_capture \
#               TABGPT_VK_CAPTURE_DIR=<an existing folder> <any Vulkan program>
set -e
cd "$(dirname "$0")"
if [ ! -f /usr/include/vulkan/vk_layer.h ]; then
  echo "build.sh: no Vulkan headers (/usr/include/vulkan/vk_layer.h): apt-get install -y libvulkan-dev" >&2
  exit 2
fi
gcc -O2 -shared -fPIC -fvisibility=hidden -Wall -o libVkLayer_tabgpt_capture.so capture_layer.c
