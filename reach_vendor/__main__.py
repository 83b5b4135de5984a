from reach_vendor.cli import main

raise SystemExit(main())
