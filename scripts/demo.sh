#!/usr/bin/env bash
# Brings up the sandbox cluster with a demo LoadBalancer Service (issue 5). Not built yet: say so plainly.
echo "demo.sh: the sandbox demo is not built yet (tracked in issue 5); run ./scripts/test-all.sh to see what works" >&2
exit 1
