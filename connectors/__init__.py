"""sensorwax connectors: the SSE client, the Bytewax source, sinks and the sensor simulator."""
