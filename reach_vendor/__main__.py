from reach_vendor.ops.cli import main

raise SystemExit(main())
