handlers/sleep.so: handlers/sleep.c include/redwork/handler.h
include/redwork/handler.h:
