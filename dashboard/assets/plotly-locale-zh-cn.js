/* Chinese (zh-CN) for the plotly.js toolbar and dates, registered when plotly.js loads
   (plotly.js reads window.PlotlyLocales at start-up; dcc.Graph loads it after the assets).
   Served from this process like everything else: no locale file from a CDN. */
window.PlotlyLocales = (window.PlotlyLocales || []).concat([{
  moduleType: "locale",
  name: "zh-CN",
  dictionary: {
    "Autoscale": "自动缩放",
    "Box Select": "框选",
    "Compare data on hover": "悬停时比较数据",
    "Download plot": "下载图片",
    "Download plot as a PNG": "下载为 PNG 图片",
    "Image download succeeded": "图片已下载",
    "Lasso Select": "套索选择",
    "Pan": "平移",
    "Preparing image - this may take a few seconds": "正在生成图片，请稍候",
    "Reset": "复位",
    "Reset axes": "复位坐标轴",
    "Reset view": "复位视图",
    "Reset views": "复位视图",
    "Show closest data on hover": "悬停时显示最近的数据",
    "Sorry, there was a problem downloading your image!": "图片下载失败",
    "Toggle Spike Lines": "显示/隐藏辅助线",
    "Toggle show closest data on hover": "切换悬停显示",
    "Zoom": "缩放",
    "Zoom in": "放大",
    "Zoom out": "缩小",
    "Double-click to zoom back out": "双击复位",
    "Click to enter Colorscale title": "点击输入色阶标题",
    "trace": "序列"
  },
  format: {
    days: ["星期日", "星期一", "星期二", "星期三", "星期四", "星期五", "星期六"],
    shortDays: ["周日", "周一", "周二", "周三", "周四", "周五", "周六"],
    months: ["一月", "二月", "三月", "四月", "五月", "六月", "七月", "八月", "九月", "十月", "十一月", "十二月"],
    shortMonths: ["1月", "2月", "3月", "4月", "5月", "6月", "7月", "8月", "9月", "10月", "11月", "12月"],
    date: "%Y-%m-%d",
    decimal: ".",
    thousands: ","
  }
}]);
