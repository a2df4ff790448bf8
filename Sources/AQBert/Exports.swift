@_exported import AQNN
@_exported import AQSafeTensors
