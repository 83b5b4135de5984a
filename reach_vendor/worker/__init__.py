"""The worker: settings, the daemon's loops and the pipeline that takes one task from
claim to delivery, putting the Kaltura, store and engine adapters together."""
