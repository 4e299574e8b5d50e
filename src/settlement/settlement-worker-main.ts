// The settlement worker process moved to src/settlement-worker-main.ts; this path stays for operators' scripts (dist/src/settlement/settlement-worker-main.js).
import "../settlement-worker-main.js";
