#!/bin/bash
# A/B of the full step: alternate configurations, report each run's model-only images/s.
cd /work/main
for i in 1 2; do
  for cfg in "--threads 2" "--stock" ; do
    echo "$cfg: $(IBOTLAB_KERNEL_THREADS=${KT:-} timeout 300 npx tsx bench/step.ts --json --steps 5 $cfg 2>&1 | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{try{const r=JSON.parse(s.trim().split("\n").pop());console.log(r.imagesPerSecModelOnly.toFixed(1), JSON.stringify(r.ms), "load", r.loadAverage.map(v=>v.toFixed(1)).join("->"))}catch(e){console.log(s.slice(-300))}})')"
  done
done
