import AQCore
