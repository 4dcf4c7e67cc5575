"""HJ 212-2017 platform commands (Appendix C) on the logger side, and the audit log.

The uplink validates every request first (`hj212.check_request`: CRC, QN, ST, CN, PW, MN, Flag, each
answered by 9011 with its QnRtn and nothing else happening), so a request reaching `on_request` came
with the right MN and password of that center+station. Then, per Table C:

  request (1000 1011 1012 1061-1064 1072 2011 2021 2031 2041 2051 2061 3020):
      9011 QnRtn=1 at once, the flow in the link's command worker ([responses, records]), 9012 ExeRtn
  notification (2012 2022): 9013
  other known CNs (3011-3019, 3021: instrument control this logger cannot do): 9011 QnRtn=2

ExeRtn: 1 done, 2 failed, 3 bad/missing parameter or an instrument (PolId) the logger cannot reach,
4 no 9014 for a history record, 100 no data. Logger-wide settings (time, RtdInterval, MinInterval) act on
the one acquisition every center shares; password, OverTime/ReCount, realtime and status switches belong
to the center+station that sent the command and are persisted per center+station (app/params.py).
History recall (2051 2061 2031 2041) and log recall (3020 i11001) are read-only: they never touch an
upload queue, so a center's recall cannot move another center's (or its own) upload cursor.

Every change goes through `audit(source, what, old, new)`: a log line, a small RAM ring and the audit
sink (with a store as `history`: `{"kind": "aud", "data": [source, what, old, new]}` appended); it is also
reported to the affected platform links as a 3020 log upload. 3020 i11001 recall reads the store's audit
records (the RAM ring when there is no store). Passwords are never written in clear: old/new are masked.
History recall reads `history.query(kind, station, t0, t1)` (the flash store: app/store.py).

Hook for the rules engine (`rules`, given when the config has rules): platform-pushed
alert levels (`rules.set_alert_level(level, "platform", t)`) and background values for net limits
(`rules.set_background(station, code, value, t)`) have no HJ 212-2017 CN; a vendor CN handler added
here would call them.

The logger asks for time calibration (1013, answered by 9013 and followed by the platform's 1012) on the
first connection after boot and after an outage of LONG_OUTAGE_S or more.
"""

from micropython import const

from app import log
from app.clock import MIN_INTERVALS, parse_stamp, stamp
from app.cp import encode_cp, history_kind, info_text
from protocols import hj212

_ASKED_WINDOW_S = const(60)  # a 1012 later than this after our 1013 is not taken as its answer
LONG_OUTAGE_S = 3600  # sim seconds without a platform after which the clock is re-calibrated (1013)
_AUDIT_KEEP = const(16)  # audit entries kept in RAM for 3020 i11001 recall (the store keeps them all)
REQUEST_CNS = ("1000", "1011", "1012", "1061", "1062", "1063", "1064", "1072", "2011", "2021", "3020")
_NOTIFY_CNS = const(("2012", "2022"))
_WORK_STATUS = {"N": 0, "M": 1, "D": 2, "C": 3, "F": 9}  # data flag -> i12001 (Table B.10)
_MASK = const("******")
EXE_OK = hj212.EXERTN_OK
EXE_FAILED = hj212.EXERTN_FAILED
EXE_BAD = hj212.EXERTN_BAD_CONDITION
EXE_TIMEOUT = hj212.EXERTN_TIMEOUT
EXE_NO_DATA = hj212.EXERTN_NO_DATA

# -- audit log -----------------------------------------------------------------------------------------

_ring = []  # [t, source, what, old, new], newest last
_sink = None  # callable(entry) that makes the entry durable (store); set with set_audit_sink
_clock = None


def set_audit_sink(fn, clock=None):
    global _sink, _clock
    _sink = fn
    if clock is not None:
        _clock = clock


def audit(source, what, old, new):
    """Records one parameter change: `source` who (e.g. "national/boiler" or "console"), `what` the
    parameter, old and new values (strings; mask secrets before calling). Returns the entry."""
    t = int(_clock()) if _clock is not None else 0
    entry = [t, source, what, str(old), str(new)]
    log.info("audit", "%s: %s %s -> %s" % (source, what, entry[3], entry[4]))
    _ring.append(entry)
    if len(_ring) > _AUDIT_KEEP:
        _ring.pop(0)
    if _sink is not None:
        try:
            _sink(entry)
        except Exception as exc:
            log.error("audit", "audit entry not stored (%s)" % exc)
    return entry


def audit_entries(t0=None, t1=None):
    """RAM audit entries with t0 <= t <= t1 (None = open)."""
    return [e for e in _ring if (t0 is None or e[0] >= t0) and (t1 is None or e[0] <= t1)]


def audit_text(entry):
    return "%s set %s %s -> %s" % (entry[1], entry[2], entry[3], entry[4])


# -- history -------------------------------------------------------------------------------------------


def _rec_cp(item, offset_s):
    """(t, cp text) of a history item: a record dict (record contract) or a (t, cp) pair."""
    if isinstance(item, dict):
        return item["t"], encode_cp(item, offset_s)
    return item[0], item[1]


# -- commands ------------------------------------------------------------------------------------------


class Commands:
    def __init__(self, clock, offset_s, logger_cfg, params=None, set_time=None, acq=None, history=None,
                 rules=None):
        """`clock()` sim epoch s; `logger_cfg` the config's logger section (intervals, after the params
        overlay); `set_time(t)` the HAL clock setter; `acq` the acquisition (optional setters
        `set_rtd_interval(s)`, `set_min_interval(min)`, `time_changed(old, new)`); `history` an object
        with `query(kind, station, t0, t1)` (the store: with `append`, the audit entries go there too);
        `rules` the app.rules.Rules, if any."""
        self.clock = clock
        self.offset_s = offset_s
        self.rtd_s = logger_cfg.get("rtd_interval_s", 30)
        self.min_interval = logger_cfg.get("min_interval_min", 10)
        self.params = params
        self.set_time = set_time
        self.acq = acq
        self.history = history
        self.links = []
        self.rules = rules  # hook for alert level / background values pushed by a platform
        self.time_sync_due = True  # at boot
        self.time_syncs = 0
        self._asked_at = None  # sim time of our last 1013
        append = getattr(history, "append", None)  # the store: audit entries into its audit lane
        set_audit_sink(None if append is None else
                       (lambda e: append({"kind": "aud", "station": "", "t": e[0], "data": e[1:]})), clock)

    def attach(self, up):
        """Called by each Uplink built with these commands: applies the persisted values of its
        center+station, and reports logger-wide changes to it."""
        self.links.append(up)
        if self.params is not None:
            vals = self.params.link_values(up.center, up.station)
            for key in ("pw", "overtime_s", "recount", "realtime", "status"):
                if key in vals:
                    setattr(up, key, vals[key])

    # -- entry points from the uplink ------------------------------------------------------------------

    def on_connect(self, up, outage_s):
        if outage_s >= LONG_OUTAGE_S:
            self.time_sync_due = True
        if self.time_sync_due:
            self.time_sync_due = False  # one link asks; the 1012 that follows sets the one clock
            up.submit(lambda: self._time_sync(up))

    async def _time_sync(self, up):
        self._asked_at = self.clock()  # the 1012 that answers was stamped after this
        ok = await up.send_acked("1013", "", reply_cn=hj212.CN_NOTIFY_REPLY)
        if ok:
            self.time_syncs += 1
            log.info("commands", "%s: time calibration requested (1013 answered)" % up.name)
        else:
            self.time_sync_due = True  # try again on the next connection
            log.warn("commands", "%s: no 9013 for the time calibration request" % up.name)

    async def on_request(self, up, req):
        """A request that passed check_request (reader task: must not wait for the platform here)."""
        cn = req.cn
        cp = _MASK if cn == "1072" else req.cp_text()  # never a password in the log
        log.info("commands", "%s: CN=%s QN=%s %s" % (up.name, cn, req.qn, cp))
        if cn in _NOTIFY_CNS:
            key = "realtime" if cn == "2012" else "status"
            self._switch(up, key, False)
            await up.send(hj212.reply_9013(req))
            return
        if history_kind(cn) is not None:
            fn = self._history
        else:
            fn = getattr(self, "_cn" + cn, None) if cn in REQUEST_CNS else None
        if fn is None:
            log.warn("commands", "%s: CN=%s not supported by this logger; QnRtn=2" % (up.name, cn))
            await up.send(hj212.reply_9011(req, hj212.QNRTN_REJECTED))
            return

        async def flow():
            try:
                rtn = await fn(up, req)
            except ValueError as exc:
                log.warn("commands", "%s: CN=%s QN=%s: %s" % (up.name, cn, req.qn, exc))
                rtn = EXE_BAD
            await up.send(hj212.reply_9012(req, rtn))

        if not up.submit(flow):
            log.warn("commands", "%s: busy; CN=%s QN=%s rejected" % (up.name, cn, req.qn))
            await up.send(hj212.reply_9011(req, hj212.QNRTN_REJECTED))
            return
        if req.flag is None or req.ack_wanted:
            await up.send(hj212.reply_9011(req, hj212.QNRTN_READY))

    # -- helpers ---------------------------------------------------------------------------------------

    def change(self, up, what, old, new, everyone=False):
        """Audits a change made by `up`'s center and reports it as a 3020 log upload: to every link when
        the setting is logger-wide, else to `up` only."""
        entry = audit(up.name if up is not None else "logger", what, old, new)
        cp = "DataTime=%s;i11001-Info=%s" % (stamp(entry[0], self.offset_s), info_text(audit_text(entry)))
        for link in self.links if everyone else ([up] if up is not None else []):
            link.offer_cp("info", cp)

    def _switch(self, up, key, value):
        old = getattr(up, key, False)
        if key == "realtime" and hasattr(up, "set_realtime"):
            up.set_realtime(value)
        else:
            setattr(up, key, value)
        if self.params is not None:
            self.params.set_link(up.center, up.station, key, value)
        if old != value:
            self.change(up, key, "on" if old else "off", "on" if value else "off")

    def _response(self, up, req, cp):
        """A response packet of a request flow (C.2, C.5, C.7, C.43): the request's QN, the station's ST,
        Flag without A."""
        return hj212.Packet(up.st, req.cn, req.pw, up.mn, cp, req.qn, hj212.reply_flag(req))

    def _int(self, req, key, lo, hi):
        v = req.get(key)
        if v is None or not v.strip().isdigit():
            raise ValueError("%s=%r is not a number" % (key, v))
        v = int(v)
        if not lo <= v <= hi:
            raise ValueError("%s=%d out of %d..%d" % (key, v, lo, hi))
        return v

    def _time(self, req, key):
        v = req.get(key)
        if v is None:
            raise ValueError("%s missing" % key)
        return parse_stamp(v.strip(), self.offset_s)

    # -- 1000 .. 1072 ------------------------------------------------------------------------------------

    async def _cn1000(self, up, req):
        if req.get("OverTime") is None and req.get("ReCount") is None:
            raise ValueError("neither OverTime nor ReCount given")
        new = {}
        if req.get("OverTime") is not None:
            new["overtime_s"] = self._int(req, "OverTime", 1, 99)
        if req.get("ReCount") is not None:
            new["recount"] = self._int(req, "ReCount", 1, 99)
        for key in ("overtime_s", "recount"):
            if key in new:
                old = getattr(up, key)
                setattr(up, key, new[key])
                if self.params is not None:
                    self.params.set_link(up.center, up.station, key, new[key])
                if old != new[key]:
                    self.change(up, key, old, new[key])
        return EXE_OK

    async def _cn1011(self, up, req):
        if req.get("PolId"):
            return EXE_BAD  # instrument clocks are not readable over the configured Modbus maps
        now = self.clock()
        await up.send(self._response(up, req, [[("SystemTime", stamp(now, self.offset_s))]]))
        return EXE_OK

    async def _cn1012(self, up, req):
        if req.get("PolId"):
            return EXE_BAD
        new = self._time(req, "SystemTime")
        if not 946684800 <= new < 4102444800:  # 2000 .. 2100: a typo must not throw the clock decades
            raise ValueError("SystemTime out of 2000..2099")
        if self.set_time is None:
            return EXE_FAILED
        old = self.clock()
        asked, self._asked_at = self._asked_at, None
        if asked is None or old - asked > _ASKED_WINDOW_S:
            asked = old  # unasked: the platform stamped it just before it arrived
        # SystemTime has 1 s resolution and was stamped between our 1013 and now: a clock that read inside
        # [new, new + 1) somewhere in that window already agrees with the platform, and stepping it to the
        # whole second would shift the sampling phase by up to a second (plus the transit) for nothing.
        if not (asked < new + 1 and old >= new):
            self.set_time(new)
            tc = getattr(self.acq, "time_changed", None)
            if tc is not None:
                tc(old, new)
        self.change(up, "SystemTime", stamp(old, self.offset_s), stamp(new, self.offset_s), everyone=True)
        return EXE_OK

    async def _cn1061(self, up, req):
        await up.send(self._response(up, req, [[("RtdInterval", str(self.rtd_s))]]))
        return EXE_OK

    async def _cn1063(self, up, req):
        await up.send(self._response(up, req, [[("MinInterval", str(self.min_interval))]]))
        return EXE_OK

    async def _cn1062(self, up, req):
        new = self._int(req, "RtdInterval", 30, 3600)
        old = self.rtd_s
        acq = self.acq
        setter = getattr(acq, "set_rtd_interval", None)
        if setter is not None:
            setter(new)
        elif acq is not None and hasattr(acq, "rtd_s"):
            acq.rtd_s = new  # the acquisition reads it at every tick
        self.rtd_s = new
        if self.params is not None:
            self.params.set_logger("rtd_interval_s", new)
        if old != new:
            self.change(up, "RtdInterval", old, new, everyone=True)
        return EXE_OK

    async def _cn1064(self, up, req):
        v = self._int(req, "MinInterval", 1, 30)
        if v not in MIN_INTERVALS:
            raise ValueError("MinInterval=%d not one of %r" % (v, MIN_INTERVALS))
        old = self.min_interval
        setter = getattr(self.acq, "set_min_interval", None)
        if setter is not None:
            setter(v)  # closes/realigns the running minute periods
        elif old != v:
            log.warn("commands", "no set_min_interval in the acquisition: MinInterval %d after restart" % v)
        self.min_interval = v
        if self.params is not None:
            self.params.set_logger("min_interval_min", v)
        if old != v:
            self.change(up, "MinInterval", old, v, everyone=True)
        return EXE_OK

    async def _cn1072(self, up, req):
        from app.params import valid_pw

        new = req.get("NewPW")
        if not valid_pw(new):
            raise ValueError("NewPW is not 1..32 printable ASCII characters without ; , = &")
        if self.params is not None:
            self.params.set_link(up.center, up.station, "pw", new)  # persisted before it is used
        up.pw = new  # the 9012 still carries the old PW: it answers the request
        self.change(up, "PW", _MASK, _MASK)
        return EXE_OK

    # -- 2011 2021 (2012 2022 are notifications) -----------------------------------------------------------

    async def _cn2011(self, up, req):
        self._switch(up, "realtime", True)
        return EXE_OK

    async def _cn2021(self, up, req):
        # No treatment-facility (SBxxx) points are configured yet: the switch is kept for when they are.
        self._switch(up, "status", True)
        return EXE_OK

    # -- history ---------------------------------------------------------------------------------------

    async def _history(self, up, req):
        """2051 2061 2031 2041: the records of the kind the CN names, BeginTime..EndTime, each acked."""
        kind = history_kind(req.cn)
        t0 = self._time(req, "BeginTime")
        t1 = self._time(req, "EndTime")
        if t1 < t0:
            raise ValueError("EndTime before BeginTime")
        if self.history is None:
            return EXE_NO_DATA
        ack = req.flag is None or req.ack_wanted
        sent = 0
        # t1 + 1: EndTime is inclusive (C.20: BeginTime=EndTime asks for one record) whatever the
        # store's upper bound convention; records are filtered here again.
        for item in self.history.query(kind, up.station, t0, t1 + 1):
            t, cp = _rec_cp(item, self.offset_s)
            if not t0 <= t <= t1:
                continue
            if not await up.send_acked(req.cn, cp, ack=ack):
                return EXE_TIMEOUT
            sent += 1
        log.info("commands", "%s: CN=%s sent %d records" % (up.name, req.cn, sent))
        return EXE_OK if sent else EXE_NO_DATA

    # -- 3020 field-device information -----------------------------------------------------------------

    async def _cn3020(self, up, req):
        info = req.get("InfoId")
        pol = req.get("PolId")
        if info == "i11001":  # log (C.41): one upload per entry in the time range, each a new QN
            t0 = self._time(req, "BeginTime") if req.get("BeginTime") else None
            t1 = self._time(req, "EndTime") if req.get("EndTime") else None
            entries = self._audit_recall(t0, t1)
            for e in entries:
                cp = "DataTime=%s;%si11001-Info=%s" % (
                    stamp(e[0], self.offset_s),
                    ("PolId=%s;" % pol) if pol else "",
                    info_text(audit_text(e)),
                )
                await up.send_acked("3020", cp, ack=False)
            return EXE_OK if entries else EXE_NO_DATA
        if info not in ("i12001", "i12002"):
            raise ValueError("InfoId=%r not served (i11001, i12001, i12002)" % (info,))
        dev = None
        if pol:
            dev = self._device_of(up.station, pol)
            if dev is None:
                raise ValueError("PolId=%s is not an instrument channel of %s" % (pol, up.station))
        if info == "i12001":
            if dev is None:
                value = 0  # the logger itself answers: it is running
            elif not _online(dev):
                value = 2
            else:
                value = _WORK_STATUS.get(getattr(dev, "flag", "N"), 0)
        else:
            value = 0 if dev is None or _online(dev) else 1
        cp = [[("DataTime", stamp(self.clock(), self.offset_s))]]
        if pol:
            cp.append([("PolId", pol)])
        cp.append([(info + "-Info", str(value))])
        await up.send(self._response(up, req, cp))  # C.43: the response reuses the request's QN
        return EXE_OK

    def _audit_recall(self, t0, t1):
        """[t, source, what, old, new] of the audit records in [t0, t1] (None = open): from the store."""
        q = getattr(self.history, "query", None)
        if q is None:
            return audit_entries(t0, t1)
        out = []
        for rec in q("aud", "", 0 if t0 is None else t0, 0xFFFFFFFF if t1 is None else t1):
            d = rec.get("data")
            if isinstance(d, list) and len(d) == 4:
                out.append([rec["t"]] + d)
        return out

    def _device_of(self, station, pol):
        """The device measuring PolId `pol` at `station`, from the acquisition's channels (no config kept)."""
        for st, _, _ in getattr(self.acq, "stations", ()):
            if st.name == station:
                return st.device(pol)
        return None


def _online(dev):
    link = getattr(dev, "link", None)
    return bool(getattr(link, "online", True))
