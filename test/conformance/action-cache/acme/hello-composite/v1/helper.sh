#!/bin/sh
echo "helper from the action directory"
