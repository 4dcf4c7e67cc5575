"""HJ 212 return codes, data flags, system CN/ST codes and the one exception type."""

# QnRtn (HJ 212-2017 Table 7): answer to a request, sent in 9011.
QNRTN_READY = 1  # 准备执行请求
QNRTN_REJECTED = 2  # 请求被拒绝
QNRTN_PW = 3  # PW 错误
QNRTN_MN = 4  # MN 错误
QNRTN_ST = 5  # ST 错误
QNRTN_FLAG = 6  # Flag 错误
QNRTN_QN = 7  # QN 错误
QNRTN_CN = 8  # CN 错误
QNRTN_CRC = 9  # CRC 校验错误
QNRTN_UNKNOWN = 100  # 未知错误

# ExeRtn (Table 6): execution result, sent in 9012.
EXERTN_OK = 1  # 执行成功
EXERTN_FAILED = 2  # 执行失败，但不知道原因
EXERTN_BAD_CONDITION = 3  # 命令请求条件错误
EXERTN_TIMEOUT = 4  # 通讯超时
EXERTN_BUSY = 5  # 系统繁忙不能执行
EXERTN_FAULT = 6  # 系统故障
EXERTN_NO_DATA = 100  # 没有数据

# Data flags (Table 8), the value of `xxxxxx-Flag`.
DATA_NORMAL = "N"  # 在线监控（监测）仪器仪表工作正常
DATA_STOPPED = "F"  # 仪器仪表停运
DATA_MAINTENANCE = "M"  # 维护期间产生的数据
DATA_MANUAL = "S"  # 手工输入的设定值
DATA_FAULT = "D"  # 仪器仪表故障
DATA_CALIBRATION = "C"  # 处于校准状态
DATA_OVER_RANGE = "T"  # 采样数值超过测量上限
DATA_COMM_FAIL = "B"  # 仪器仪表与数采仪通讯异常
DATA_FLAGS = "NFMSDCTB"

# Table 9 commands a platform sends to a logger (requests and notifications); a logger answers any
# other CN from a platform with QnRtn 8.
PLATFORM_CNS = (
    "1000", "1011", "1012", "1061", "1062", "1063", "1064", "1072", "2011",
    "2012", "2021", "2022", "2031", "2041", "2051", "2061", "3011", "3012",
    "3013", "3014", "3015", "3016", "3017", "3018", "3019", "3020", "3021",
)

# System interaction (Table 5 ST=91, Table 9 CN 9011-9014).
ST_SYSTEM = "91"
CN_REQUEST_REPLY = "9011"  # 请求应答 (QnRtn)
CN_EXE_RESULT = "9012"  # 执行结果 (ExeRtn)
CN_NOTIFY_REPLY = "9013"  # 通知应答
CN_DATA_ACK = "9014"  # 数据应答

# Why a frame or request was refused: reason -> the QnRtn it maps to. Anything not listed maps to 100.
QNRTN_FOR_REASON = {
    "crc": QNRTN_CRC,
    "bad-qn": QNRTN_QN,
    "bad-st": QNRTN_ST,
    "wrong-st": QNRTN_ST,
    "bad-cn": QNRTN_CN,
    "unknown-cn": QNRTN_CN,
    "bad-pw": QNRTN_PW,
    "wrong-pw": QNRTN_PW,
    "bad-mn": QNRTN_MN,
    "wrong-mn": QNRTN_MN,
    "bad-flag": QNRTN_FLAG,
}


class Hj212Error(Exception):
    """A bad frame, segment or request.

    `reason` is a short machine-readable string (see the package docstring for the list), `qn_rtn` the
    QnRtn code to answer with, `raw` the offending bytes when known (set by the stream decoder), and
    `packet` the best-effort decoded packet when the header could still be read (e.g. on a CRC error, so
    a logger can still answer 9011 QnRtn=9 with the request's QN).
    """

    ok = False  # so stream results can be told apart with `item.ok` (Packet.ok is True)

    def __init__(self, reason, detail=None, qn_rtn=None, packet=None):
        super().__init__(reason if detail is None else reason + ": " + detail)
        self.reason = reason
        self.qn_rtn = QNRTN_FOR_REASON.get(reason, QNRTN_UNKNOWN) if qn_rtn is None else qn_rtn
        self.packet = packet
        self.raw = None
