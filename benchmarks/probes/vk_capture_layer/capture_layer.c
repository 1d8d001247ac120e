// capture_layer.c — a Vulkan layer (an experiment's tool, not part of the project): it records what the
// driver made of every compute pipeline an application creates, from inside that application (Dawn,
// wgpu-native), so that our kernels can be judged by the code the GPU runs and not only by timing.
//
// For each vkCreateShaderModule it writes the SPIR-V (what Tint or naga generated: overrides already
// substituted) to DIR/module_<n>.spv. For each compute pipeline it appends one JSON line to
// DIR/pipelines.jsonl: creation index, module number, entry point name, workgroup size is in the
// SPIR-V, and, where the device has VK_KHR_pipeline_executable_properties (the layer enables it on
// every device it sees), the driver's statistics (registers, local memory, shared memory...) and any
// internal representations (written to DIR/pipeline_<i>_<name>.txt or .bin).
//
// Build (here; gcc and Debian's libvulkan-dev): see build.sh. Use: VK_ADD_LAYER_PATH=<this folder>,
// VK_INSTANCE_LAYERS=VK_LAYER_TABGPT_capture, TABGPT_VK_CAPTURE_DIR=<out folder>.
// One instance at a time; up to 16 devices. Everything not intercepted passes straight through.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <vulkan/vulkan.h>
#include <vulkan/vk_layer.h>

#define EXPORT __attribute__((visibility("default")))

static PFN_vkGetInstanceProcAddr next_gipa;
static VkInstance the_instance;

typedef struct {
  VkDevice device;
  PFN_vkGetDeviceProcAddr gdpa;
  PFN_vkCreateShaderModule create_module;
  PFN_vkCreateComputePipelines create_compute;
  PFN_vkGetPipelineExecutablePropertiesKHR exec_props;
  PFN_vkGetPipelineExecutableStatisticsKHR exec_stats;
  PFN_vkGetPipelineExecutableInternalRepresentationsKHR exec_ir;
  int stats;  // the extension was enabled on this device
} DeviceEntry;

static DeviceEntry devices[16];
static int n_devices;
static int n_modules;
static int n_pipelines;
// module handle -> number, for the pipelines' JSON (a plain list: a few hundred modules at most)
static VkShaderModule module_handles[4096];
static int module_numbers[4096];
static int n_known;

static const char *out_dir(void) {
  const char *d = getenv("TABGPT_VK_CAPTURE_DIR");
  return d ? d : ".";
}

static DeviceEntry *entry_of(VkDevice device) {
  for (int i = 0; i < n_devices; i++)
    if (devices[i].device == device) return &devices[i];
  return NULL;
}

static void write_file(const char *name, const void *data, size_t size) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", out_dir(), name);
  FILE *f = fopen(path, "wb");
  if (!f) return;
  fwrite(data, 1, size, f);
  fclose(f);
}

static VKAPI_ATTR VkResult VKAPI_CALL capture_CreateInstance(const VkInstanceCreateInfo *info,
                                                             const VkAllocationCallbacks *alloc,
                                                             VkInstance *instance) {
  VkLayerInstanceCreateInfo *chain = (VkLayerInstanceCreateInfo *)info->pNext;
  while (chain && !(chain->sType == VK_STRUCTURE_TYPE_LOADER_INSTANCE_CREATE_INFO &&
                    chain->function == VK_LAYER_LINK_INFO))
    chain = (VkLayerInstanceCreateInfo *)chain->pNext;
  if (!chain) return VK_ERROR_INITIALIZATION_FAILED;
  next_gipa = chain->u.pLayerInfo->pfnNextGetInstanceProcAddr;
  chain->u.pLayerInfo = chain->u.pLayerInfo->pNext;
  PFN_vkCreateInstance create = (PFN_vkCreateInstance)next_gipa(NULL, "vkCreateInstance");
  VkResult r = create(info, alloc, instance);
  if (r == VK_SUCCESS) the_instance = *instance;
  return r;
}

static int has_extension(VkPhysicalDevice phys, const char *name) {
  PFN_vkEnumerateDeviceExtensionProperties enumerate =
      (PFN_vkEnumerateDeviceExtensionProperties)next_gipa(the_instance, "vkEnumerateDeviceExtensionProperties");
  uint32_t n = 0;
  enumerate(phys, NULL, &n, NULL);
  VkExtensionProperties *props = calloc(n ? n : 1, sizeof *props);
  enumerate(phys, NULL, &n, props);
  int found = 0;
  for (uint32_t i = 0; i < n; i++)
    if (!strcmp(props[i].extensionName, name)) found = 1;
  free(props);
  return found;
}

static VKAPI_ATTR VkResult VKAPI_CALL capture_CreateDevice(VkPhysicalDevice phys, const VkDeviceCreateInfo *info,
                                                           const VkAllocationCallbacks *alloc, VkDevice *device) {
  VkLayerDeviceCreateInfo *chain = (VkLayerDeviceCreateInfo *)info->pNext;
  while (chain && !(chain->sType == VK_STRUCTURE_TYPE_LOADER_DEVICE_CREATE_INFO &&
                    chain->function == VK_LAYER_LINK_INFO))
    chain = (VkLayerDeviceCreateInfo *)chain->pNext;
  if (!chain) return VK_ERROR_INITIALIZATION_FAILED;
  PFN_vkGetInstanceProcAddr gipa = chain->u.pLayerInfo->pfnNextGetInstanceProcAddr;
  PFN_vkGetDeviceProcAddr gdpa = chain->u.pLayerInfo->pfnNextGetDeviceProcAddr;
  chain->u.pLayerInfo = chain->u.pLayerInfo->pNext;
  PFN_vkCreateDevice create = (PFN_vkCreateDevice)gipa(the_instance, "vkCreateDevice");

  // Enable VK_KHR_pipeline_executable_properties where the device has it (and the app did not).
  const char *ext = VK_KHR_PIPELINE_EXECUTABLE_PROPERTIES_EXTENSION_NAME;
  int stats = has_extension(phys, ext);
  VkDeviceCreateInfo copy = *info;
  const char **names = calloc(info->enabledExtensionCount + 1, sizeof *names);
  int already = 0;
  for (uint32_t i = 0; i < info->enabledExtensionCount; i++) {
    names[i] = info->ppEnabledExtensionNames[i];
    if (!strcmp(names[i], ext)) already = 1;
  }
  VkPhysicalDevicePipelineExecutablePropertiesFeaturesKHR feature = {
      .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PIPELINE_EXECUTABLE_PROPERTIES_FEATURES_KHR,
      .pNext = (void *)info->pNext,
      .pipelineExecutableInfo = VK_TRUE};
  if (stats) {
    if (!already) names[copy.enabledExtensionCount++] = ext;
    copy.ppEnabledExtensionNames = names;
    copy.pNext = &feature;
  }
  VkResult r = create(phys, &copy, alloc, device);
  if (r != VK_SUCCESS && stats) {  // the chain may already hold the feature struct: retry plainly
    stats = 0;
    r = create(phys, info, alloc, device);
  }
  free(names);
  if (r != VK_SUCCESS || n_devices >= 16) return r;
  DeviceEntry *e = &devices[n_devices++];
  e->device = *device;
  e->gdpa = gdpa;
  e->create_module = (PFN_vkCreateShaderModule)gdpa(*device, "vkCreateShaderModule");
  e->create_compute = (PFN_vkCreateComputePipelines)gdpa(*device, "vkCreateComputePipelines");
  e->stats = stats;
  if (stats) {
    e->exec_props = (PFN_vkGetPipelineExecutablePropertiesKHR)gdpa(*device, "vkGetPipelineExecutablePropertiesKHR");
    e->exec_stats = (PFN_vkGetPipelineExecutableStatisticsKHR)gdpa(*device, "vkGetPipelineExecutableStatisticsKHR");
    e->exec_ir = (PFN_vkGetPipelineExecutableInternalRepresentationsKHR)gdpa(
        *device, "vkGetPipelineExecutableInternalRepresentationsKHR");
  }
  char line[256];
  snprintf(line, sizeof line, "{\"device\": %d, \"statistics\": %s}\n", n_devices - 1, stats ? "true" : "false");
  char path[1024];
  snprintf(path, sizeof path, "%s/devices.jsonl", out_dir());
  FILE *f = fopen(path, "a");
  if (f) { fputs(line, f); fclose(f); }
  return r;
}

static VKAPI_ATTR VkResult VKAPI_CALL capture_CreateShaderModule(VkDevice device, const VkShaderModuleCreateInfo *info,
                                                                 const VkAllocationCallbacks *alloc,
                                                                 VkShaderModule *module) {
  DeviceEntry *e = entry_of(device);
  VkResult r = e->create_module(device, info, alloc, module);
  if (r == VK_SUCCESS) {
    int n = n_modules++;
    char name[64];
    snprintf(name, sizeof name, "module_%d.spv", n);
    write_file(name, info->pCode, info->codeSize);
    if (n_known < 4096) { module_handles[n_known] = *module; module_numbers[n_known++] = n; }
  }
  return r;
}

static int module_number(VkShaderModule m) {
  for (int i = n_known - 1; i >= 0; i--)
    if (module_handles[i] == m) return module_numbers[i];
  return -1;
}

static void json_string(FILE *f, const char *s) {
  fputc('"', f);
  for (; *s; s++) {
    if (*s == '"' || *s == '\\') fputc('\\', f);
    if ((unsigned char)*s < 32) fputc(' ', f); else fputc(*s, f);
  }
  fputc('"', f);
}

static void describe(DeviceEntry *e, VkPipeline pipeline, const VkComputePipelineCreateInfo *info, FILE *f) {
  int index = n_pipelines++;
  fprintf(f, "{\"pipeline\": %d, \"module\": %d, \"entry\": ", index, module_number(info->stage.module));
  json_string(f, info->stage.pName ? info->stage.pName : "");
  const VkSpecializationInfo *spec = info->stage.pSpecializationInfo;
  fprintf(f, ", \"specialization_constants\": %u", spec ? spec->mapEntryCount : 0);
  if (!e->stats) { fputs("}\n", f); return; }
  VkPipelineInfoKHR pinfo = {.sType = VK_STRUCTURE_TYPE_PIPELINE_INFO_KHR, .pipeline = pipeline};
  uint32_t n_exec = 0;
  e->exec_props(e->device, &pinfo, &n_exec, NULL);
  fputs(", \"executables\": [", f);
  for (uint32_t x = 0; x < n_exec; x++) {
    VkPipelineExecutableInfoKHR xinfo = {.sType = VK_STRUCTURE_TYPE_PIPELINE_EXECUTABLE_INFO_KHR,
                                         .pipeline = pipeline, .executableIndex = x};
    uint32_t n_stat = 0;
    e->exec_stats(e->device, &xinfo, &n_stat, NULL);
    VkPipelineExecutableStatisticKHR *stats = calloc(n_stat ? n_stat : 1, sizeof *stats);
    for (uint32_t i = 0; i < n_stat; i++) stats[i].sType = VK_STRUCTURE_TYPE_PIPELINE_EXECUTABLE_STATISTIC_KHR;
    e->exec_stats(e->device, &xinfo, &n_stat, stats);
    fputs(x ? ", {" : "{", f);
    for (uint32_t i = 0; i < n_stat; i++) {
      if (i) fputs(", ", f);
      json_string(f, stats[i].name);
      fputs(": ", f);
      switch (stats[i].format) {
        case VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_BOOL32_KHR: fputs(stats[i].value.b32 ? "true" : "false", f); break;
        case VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_INT64_KHR: fprintf(f, "%lld", (long long)stats[i].value.i64); break;
        case VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_UINT64_KHR: fprintf(f, "%llu", (unsigned long long)stats[i].value.u64); break;
        default: fprintf(f, "%g", stats[i].value.f64);
      }
    }
    free(stats);
    // Internal representations (whatever the driver offers: IR, assembly, binaries), to files.
    uint32_t n_ir = 0;
    e->exec_ir(e->device, &xinfo, &n_ir, NULL);
    fprintf(f, "%s\"internal_representations\": [", n_stat ? ", " : "");
    if (n_ir) {
      VkPipelineExecutableInternalRepresentationKHR *irs = calloc(n_ir, sizeof *irs);
      for (uint32_t i = 0; i < n_ir; i++) irs[i].sType = VK_STRUCTURE_TYPE_PIPELINE_EXECUTABLE_INTERNAL_REPRESENTATION_KHR;
      e->exec_ir(e->device, &xinfo, &n_ir, irs);  // sizes
      for (uint32_t i = 0; i < n_ir; i++) irs[i].pData = calloc(irs[i].dataSize + 1, 1);
      e->exec_ir(e->device, &xinfo, &n_ir, irs);  // data
      for (uint32_t i = 0; i < n_ir; i++) {
        char name[128];
        snprintf(name, sizeof name, "pipeline_%d_exec%u_ir%u.%s", index, x, i, irs[i].isText ? "txt" : "bin");
        write_file(name, irs[i].pData, irs[i].isText && irs[i].dataSize ? irs[i].dataSize - 1 : irs[i].dataSize);
        if (i) fputs(", ", f);
        fputs("{\"name\": ", f);
        json_string(f, irs[i].name);
        fprintf(f, ", \"file\": \"%s\", \"bytes\": %zu}", name, irs[i].dataSize);
        free(irs[i].pData);
      }
      free(irs);
    }
    fputs("]}", f);
  }
  fputs("]}\n", f);
}

static VKAPI_ATTR VkResult VKAPI_CALL capture_CreateComputePipelines(VkDevice device, VkPipelineCache cache,
                                                                     uint32_t count,
                                                                     const VkComputePipelineCreateInfo *infos,
                                                                     const VkAllocationCallbacks *alloc,
                                                                     VkPipeline *pipelines) {
  DeviceEntry *e = entry_of(device);
  VkComputePipelineCreateInfo *copy = calloc(count ? count : 1, sizeof *copy);
  for (uint32_t i = 0; i < count; i++) {
    copy[i] = infos[i];
    if (e->stats)
      copy[i].flags |= VK_PIPELINE_CREATE_CAPTURE_STATISTICS_BIT_KHR |
                       VK_PIPELINE_CREATE_CAPTURE_INTERNAL_REPRESENTATIONS_BIT_KHR;
  }
  VkResult r = e->create_compute(device, cache, count, copy, alloc, pipelines);
  if (r == VK_SUCCESS) {
    char path[1024];
    snprintf(path, sizeof path, "%s/pipelines.jsonl", out_dir());
    FILE *f = fopen(path, "a");
    if (f) {
      for (uint32_t i = 0; i < count; i++) describe(e, pipelines[i], &copy[i], f);
      fclose(f);
    }
  }
  free(copy);
  return r;
}

EXPORT VKAPI_ATTR PFN_vkVoidFunction VKAPI_CALL capture_GetDeviceProcAddr(VkDevice device, const char *name);

static PFN_vkVoidFunction own(const char *name) {
  if (!strcmp(name, "vkCreateShaderModule")) return (PFN_vkVoidFunction)capture_CreateShaderModule;
  if (!strcmp(name, "vkCreateComputePipelines")) return (PFN_vkVoidFunction)capture_CreateComputePipelines;
  if (!strcmp(name, "vkGetDeviceProcAddr")) return (PFN_vkVoidFunction)capture_GetDeviceProcAddr;
  return NULL;
}

EXPORT VKAPI_ATTR PFN_vkVoidFunction VKAPI_CALL capture_GetDeviceProcAddr(VkDevice device, const char *name) {
  PFN_vkVoidFunction f = own(name);
  if (f) return f;
  DeviceEntry *e = entry_of(device);
  return e ? e->gdpa(device, name) : NULL;
}

EXPORT VKAPI_ATTR PFN_vkVoidFunction VKAPI_CALL capture_GetInstanceProcAddr(VkInstance instance, const char *name) {
  if (!strcmp(name, "vkCreateInstance")) return (PFN_vkVoidFunction)capture_CreateInstance;
  if (!strcmp(name, "vkCreateDevice")) return (PFN_vkVoidFunction)capture_CreateDevice;
  if (!strcmp(name, "vkGetInstanceProcAddr")) return (PFN_vkVoidFunction)capture_GetInstanceProcAddr;
  PFN_vkVoidFunction f = own(name);
  if (f) return f;
  return next_gipa ? next_gipa(instance, name) : NULL;
}
