/**
 * What to tell a user whose requested backend cannot load: the package(s) and the exact command.
 * tfjs packages are pinned to the running tfjs-core version because a second copy of tfjs-core
 * would register the backend in a different engine, invisible to ibotlab.
 */
import type { BackendName } from './types';

export const TFJS_NODE = '@tensorflow/tfjs-node';
export const TFJS_NODE_GPU = '@tensorflow/tfjs-node-gpu';
export const TFJS_WEBGPU = '@tensorflow/tfjs-backend-webgpu';
export const WEBGPU_DAWN = 'webgpu';
export const TFJS_WASM = '@tensorflow/tfjs-backend-wasm';
export const TFJS_CPU = '@tensorflow/tfjs-backend-cpu';

/** One or more sentences with the exact `npm install` command(s) that make `name` loadable. */
export function installHint(name: BackendName, tfjsVersion: string, package_?: string): string {
  const v = tfjsVersion ? `@${tfjsVersion}` : '';
  switch (name) {
    case 'tensorflow': {
      const cpu =
        `For the CPU build run \`npm install ${TFJS_NODE}${v}\` (it needs network access: its install ` +
        'script downloads libtensorflow, ~100 MB).';
      const gpu =
        `For NVIDIA GPUs run \`npm install ${TFJS_NODE_GPU}${v}\` (also downloads libtensorflow; needs ` +
        'the CUDA 11.2 and cuDNN 8.1 libraries that its libtensorflow 2.9.1 was built against, on the library path, and a visible GPU).';
      if (package_ === TFJS_NODE_GPU) return `${gpu} ${cpu}`;
      return `${cpu} ${gpu}`;
    }
    case 'webgpu':
      return (
        `Run \`npm install ${TFJS_WEBGPU}${v} ${WEBGPU_DAWN}\`; the \`webgpu\` package (Dawn) also needs a ` +
        'Vulkan loader and driver: `apt-get install libvulkan1` plus the GPU vendor driver (NVIDIA\'s Vulkan driver ' +
        'also loads libglvnd: `apt-get install libglvnd0 libgl1 libglx0 libegl1`), or ' +
        '`mesa-vulkan-drivers` from Debian bookworm-backports for a (slow) llvmpipe software adapter.'
      );
    case 'wasm':
      return `Run \`npm install ${TFJS_WASM}${v}\`.`;
    case 'cpu':
      return `Run \`npm install ${TFJS_CPU}${v}\`.`;
  }
}
