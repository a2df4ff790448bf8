import AQNN
