"""A naive REACH vendor loop, the baseline `bench.throughput --naive` compares with.

Re-implements the way Kaltura's published vendor sample works
(Kaltura-SolutionsEngineering/REACH-Vendor-Integration, REACH_VENDOR_SAMPLE_APP-getJobs.php)
taken to delivery: every `--list-s` (30 s) a new widget session, an app-token session
and getJobs of the PENDING tasks; then per task, on `--workers` threads, one call at a
time with the stock KalturaClient (a new connection per call): get, updateJob PROCESSING,
flavorAsset.list, flavorAsset.getUrl, the download, captionAsset.add, uploadToken.add,
uploadToken.upload, captionAsset.setContent, updateJob READY. No ASR: an empty caption
is delivered, as the daemon's no-op engine does.

    .venv/bin/python -m bench.naive_vendor --service-url URL --partner-id N
        --token-id ID --token-file PATH [--workers 4] [--list-s 30] [--hash SHA256]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import queue
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import requests
from KalturaClient import KalturaClient, KalturaConfiguration
from KalturaClient.Plugins.Caption import KalturaCaptionAsset, KalturaCaptionType
from KalturaClient.Plugins.Core import (
    KalturaAssetFilter,
    KalturaFilterPager,
    KalturaUploadedFileTokenResource,
    KalturaUploadToken,
)
from KalturaClient.Plugins.Reach import (
    KalturaEntryVendorTask,
    KalturaEntryVendorTaskFilter,
    KalturaEntryVendorTaskStatus,
)

SRT = b"1\n00:00:00,000 --> 00:00:01,000\n(no speech)\n\n"


class _Named(io.BytesIO):
    name = "caption.srt"


def _client(url: str, partner_id: int, ks: str | None = None) -> KalturaClient:
    # The stock client posts each call with requests.post: a new connection per call.
    client = KalturaClient(KalturaConfiguration(serviceUrl=url))
    client.config.partnerId = partner_id
    if ks:
        client.setKs(ks)
    return client


class NaiveVendor:
    def __init__(self, args: argparse.Namespace) -> None:
        self.url = args.service_url
        self.partner_id = args.partner_id
        self.token_id = args.token_id
        self.token = Path(args.token_file).read_text().strip()
        self.hash = args.hash
        self.list_s = args.list_s
        self.jobs: queue.Queue[Any] = queue.Queue()
        self.seen: set[int] = set()
        self.stop = threading.Event()
        self.vendor_ks = ""

    def list_round(self) -> None:
        widget = _client(self.url, self.partner_id).session.startWidgetSession(
            f"_{self.partner_id}"
        )
        digest = hashlib.new(self.hash.lower(), (widget.ks + self.token).encode()).hexdigest()
        info = _client(self.url, self.partner_id, widget.ks).appToken.startSession(
            self.token_id, digest, expiry=86400
        )
        self.vendor_ks = info.ks
        flt = KalturaEntryVendorTaskFilter()
        flt.statusEqual = KalturaEntryVendorTaskStatus.PENDING
        listed = _client(self.url, self.partner_id, self.vendor_ks).reach.entryVendorTask.getJobs(
            flt, KalturaFilterPager(pageSize=500)
        )
        for job in listed.objects or []:
            if job.id not in self.seen:
                self.seen.add(job.id)
                self.jobs.put(job)

    def lister(self) -> None:
        while not self.stop.is_set():
            try:
                self.list_round()
            except Exception as exc:  # a bench baseline: report and go on
                print(f"list failed: {exc}", file=sys.stderr, flush=True)
            self.stop.wait(self.list_s)

    def handle(self, job: Any) -> None:
        vendor = _client(self.url, self.partner_id, self.vendor_ks)
        customer = _client(self.url, job.partnerId, job.accessKey)
        task = customer.reach.entryVendorTask.get(job.id)
        vendor.reach.entryVendorTask.updateJob(
            job.id, KalturaEntryVendorTask(status=KalturaEntryVendorTaskStatus.PROCESSING)
        )
        flt = KalturaAssetFilter()
        flt.entryIdEqual = task.entryId
        flavors = _client(self.url, job.partnerId, job.accessKey).flavorAsset.list(
            flt, KalturaFilterPager(pageSize=100)
        )
        media_url = _client(self.url, job.partnerId, job.accessKey).flavorAsset.getUrl(
            flavors.objects[0].id
        )
        answer = requests.get(media_url, timeout=60)
        answer.raise_for_status()
        asset = _client(self.url, job.partnerId, job.accessKey).caption.captionAsset.add(
            task.entryId,
            KalturaCaptionAsset(language="English", format=KalturaCaptionType.SRT, fileExt="srt"),
        )
        token = _client(self.url, job.partnerId, job.accessKey).uploadToken.add(
            KalturaUploadToken(fileName="caption.srt")
        )
        _client(self.url, job.partnerId, job.accessKey).uploadToken.upload(token.id, _Named(SRT))
        _client(self.url, job.partnerId, job.accessKey).caption.captionAsset.setContent(
            asset.id, KalturaUploadedFileTokenResource(token=token.id)
        )
        _client(self.url, self.partner_id, self.vendor_ks).reach.entryVendorTask.updateJob(
            job.id,
            KalturaEntryVendorTask(
                status=KalturaEntryVendorTaskStatus.READY, outputObjectId=asset.id
            ),
        )

    def worker(self) -> None:
        while not self.stop.is_set():
            try:
                job = self.jobs.get(timeout=0.2)
            except queue.Empty:
                continue
            try:
                self.handle(job)
            except Exception as exc:
                print(f"task {job.id} failed: {exc}", file=sys.stderr, flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--service-url", required=True)
    parser.add_argument("--partner-id", type=int, required=True)
    parser.add_argument("--token-id", required=True)
    parser.add_argument("--token-file", required=True)
    parser.add_argument("--hash", default="SHA256")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--list-s", type=float, default=30.0)
    args = parser.parse_args()
    vendor = NaiveVendor(args)
    signal.signal(signal.SIGTERM, lambda *_: vendor.stop.set())
    threads = [threading.Thread(target=vendor.worker) for _ in range(args.workers)]
    for t in threads:
        t.start()
    vendor.lister()
    for t in threads:
        t.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
